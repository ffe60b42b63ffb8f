"""Single sign-on: the hub as an OpenID Connect provider for council portals."""
