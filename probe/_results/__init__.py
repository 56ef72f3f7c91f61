"""Result kinds (Explanation, Sweep, CorpusResult, TimeSeries), their files and by-word merging. Imports _utils, _method, _views."""
