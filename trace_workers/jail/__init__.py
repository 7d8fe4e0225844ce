"""The jail: the bubblewrap sandbox on the host (sandbox, seccomp) and what runs inside it (the
zygote and the modules it imports; the jail gets copies of those alone, under an empty
``__init__.py`` of its own)."""
