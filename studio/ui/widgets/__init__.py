"""Widgets several tabs share, a module each: the prompt controls, the aspect-ratio box, the result grid."""
