"""Predictions, metrics (Table 4), distortion-recognition quality (Table 3) and human ratings (Table 5).

Not built yet: see the evaluation issue. Imports only cbt/.
"""
