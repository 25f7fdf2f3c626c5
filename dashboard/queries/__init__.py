"""All SQL the dashboard runs. Views call these; templates never query."""
