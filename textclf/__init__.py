"""textclf: compare RNN, GRU, LSTM, stacked and bidirectional text classifiers."""

__version__ = "0.1.0"
