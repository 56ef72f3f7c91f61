"""Views of results: shades, matplotlib plots, self-contained HTML pages, comparisons. Imports _utils."""
