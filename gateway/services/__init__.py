"""Hub services besides the GovTalk transport: the letters outbox (the hub's post)."""
