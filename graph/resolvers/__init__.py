"""Query and mutation resolvers: authorize, call one function of ``db``, map to types."""
