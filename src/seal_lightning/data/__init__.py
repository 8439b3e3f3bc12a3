"""Loading what SEAL learns from: passages, ARC tasks, the built-in corpus, and which items each round gets."""
