"""Network backends: host threads that carry frames between a card and the outside world."""
