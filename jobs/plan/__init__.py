"""``groundtrace plan``: a seeded sample of the input (``sample``), the job's stages run on it
and scaled with ranges (``estimate``), and its table (``view``)."""
