"""The use cases. Each depends only on the domain, the contracts and the ports."""
