"""Reports built from the services: the end-of-day operations report (``daily``)."""
