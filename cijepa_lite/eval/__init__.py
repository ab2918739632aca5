"""Evaluation of frozen encoders, and results as data.

features.py  mean-pooled patch tokens of chosen depths, without autograd
probe.py     the write-up's linear probe (AdamW, 10 epochs), on one depth or every depth at once
logreg.py    a converged L-BFGS logistic regression, for small models
knn.py       the online kNN monitor the engine logs
monitors.py  collapse monitors (normalised std, RankMe)
maps.py      patch-feature maps: 4-neighbour continuity, 3 principal components as RGB (inspect)
results.py   result records, the write-up's table beside the kit's numbers
"""
from .knn import KNNMonitor, knn_top1
from .logreg import logistic_probe
from .probe import ProbeRecipe, linear_probe
from .results import load_results, load_writeup, make_result, results_table, write_result

__all__ = ["KNNMonitor", "ProbeRecipe", "knn_top1", "linear_probe", "load_results", "load_writeup",
           "logistic_probe", "make_result", "results_table", "write_result"]
