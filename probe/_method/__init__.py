"""The method and its solver: the paper's objective, the noise and the sigma solver. Imports _utils."""
