"""Predictions, metrics (Table 4), distortion-recognition quality (Table 3) and human ratings (Table 5).

predict.py (batched / concurrent generation), metrics.py (+ corpus, ngram, model_metrics), stats.py (bootstrap),
agreement.py, tables.py (Tables 3 and 5 from rows), report.py, cli.py; tabs/ the evaluation tab. Imports only cbt/.
"""
