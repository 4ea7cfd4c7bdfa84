"""LoRA fine-tuning (the paper's recipe), the CBT-mini offline model and export. Imports only cbt/.

Not built yet: see the training issue. The package exists so the layout of DESIGN.md holds.
"""
