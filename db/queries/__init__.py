"""SQL of Partner Hub, one module per domain area. Functions take a session and keyword args."""
