"""The browser face of ``s2r serve``: the voice page, its WebSocket and playable citations."""
