"""Errors that mean "the user's input is wrong": the CLI prints them without a traceback."""


class UserError(Exception):
    """Bad input (a parameter, a file, a row) described in words that name the culprit."""
