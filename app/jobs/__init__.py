"""What runs after a step's commit and in the background: the follow-up of every step, background steps, the
reconciler."""
