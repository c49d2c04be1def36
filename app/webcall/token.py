"""The access token a visitor's browser calls with: Twilio's Voice SDK lets a Device connect only with one.

twilio-python's `AccessToken` signs a JWT with an API key's secret (HS256;
`iss` the key's SID, `sub` the account SID, `grants.identity` the caller,
twilio.com/docs/iam/access-tokens). Its `VoiceGrant` names the TwiML App
whose Voice URL Twilio asks when the browser connects
(`grants.voice.outgoing.application_sid`); `incoming_allow=False` leaves out
any incoming grant, so nobody can ring a visitor's browser. The token lasts
WEB_CALL_TOKEN_TTL_SECONDS from the service's clock (`exp`), enough to press
Call; it carries no `nbf`, so a service clock a little ahead of Twilio's
cannot make a fresh token "not valid yet". It is handed to the page once and
never logged.
"""

from __future__ import annotations

from twilio.jwt.access_token import AccessToken
from twilio.jwt.access_token.grants import VoiceGrant

from app.clock import utcnow
from config import Settings


def voice_token(settings: Settings, identity: str) -> str:
    """A JWT that lets one browser call the TwiML App as IDENTITY, for a few minutes."""
    expires = int(utcnow().timestamp()) + settings.web_call_token_ttl_seconds
    token = AccessToken(settings.twilio_account_sid, settings.twilio_api_key_sid, settings.twilio_api_key_secret,
                        identity=identity, nbf=None, valid_until=expires)
    token.add_grant(VoiceGrant(outgoing_application_sid=settings.twilio_twiml_app_sid, incoming_allow=False))
    return token.to_jwt()
