"""The service's own audio, cached by Twilio for as long as its URL lasts.

Twilio fetches a <Play> file through caching proxies that obey HTTP's
caching headers: with `Cache-Control: max-age` it plays its copy without
asking again; with none (or `no-cache`) it checks the file each time the
TwiML plays it ("How can I change the cache behavior of audio files?",
Twilio's help centre). Every hold turn plays the clip again, so a check
each time is a gap in the music. The clip's URL carries its content's
hash (telephony.urls.WebhookUrls.hold_music), so a changed clip is a new
URL and the old copy never needs to expire early, as Twilio's page advises.
"""

from __future__ import annotations

from flask import Flask, Response, request

from app.telephony.urls import AUDIO_PREFIX

# A year: the URL changes whenever the file does.
AUDIO_MAX_AGE_SECONDS = 365 * 24 * 3600


def init_media_cache(app: Flask) -> None:
    """Send a long max-age on the service's own audio files."""
    app.after_request(_cache_audio)


def _cache_audio(response: Response) -> Response:
    if request.path.startswith(AUDIO_PREFIX) and response.status_code == 200:
        response.headers["Cache-Control"] = f"public, max-age={AUDIO_MAX_AGE_SECONDS}, immutable"
    return response
