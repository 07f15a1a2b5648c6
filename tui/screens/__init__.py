"""The TUI's screens, one module per screen; ``registry`` lists those of the switcher."""
