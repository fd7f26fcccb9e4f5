"""The inference evaluation suite (``autocm bench inference``) and its train/test split."""
