"""The web dashboard at ``/ui``: static files, a login session, and an overview summary."""
