"""coderauth: a least-privilege control plane for workspace agents."""
