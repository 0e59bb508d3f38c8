"""`s2r talk`: the microphone, the turn-taking loop and its screen."""
