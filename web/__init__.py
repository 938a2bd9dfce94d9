"""Web pages and the JSON API: blueprints that parse input, call planning, and render."""
