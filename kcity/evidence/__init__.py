"""Evidence bundles: the raw rows behind a pilot's figures, exported to one file that an
evaluator re-computes offline (`kcity export`, `kcity verify`, `kcity retention apply`)."""
