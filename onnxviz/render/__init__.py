"""Pictures and HTML: what results look like; every text that reaches HTML is escaped here."""
