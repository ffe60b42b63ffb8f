"""The admin console: server-rendered pages under /console, behind admin authentication.

`routes.add_console_routes(app)` registers every page module and the admin gate; `layout.render`
renders a Jinja2 template in `templates/base.html`; `auth` decides who is an admin (loopback,
a signed-in session, HTTP Basic, an admin client certificate) and provides the CSRF token.
"""
