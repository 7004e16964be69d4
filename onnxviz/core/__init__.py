"""What every layer above the graph shares: the loaded model, ``Result``, options and their checks."""
