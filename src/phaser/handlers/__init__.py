"""HTTP routes: the JSON API, health, and error rendering."""
