"""The screen: duplicates, near copies and benchmark items, decided before any program runs
(``stage``), with its helpers: code tokens, MinHash near copies, benchmark n-grams."""
