"""``hourglass demo``: a synthetic account history and the terminal report of what it did."""
