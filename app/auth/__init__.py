"""Sign-in for supervisors and agents, API tokens for the JSON API, and the guards that check them."""
