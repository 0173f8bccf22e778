"""`doctor lab`: prompt-only vs a LoRA rank sweep vs QLoRA under one budget and one eval protocol (docs/lab.md).

spec.py (the TOML spec), run.py (variants as jobs, canary registration), decide.py (numbers, target,
decision, thresholds); the report (JSON / Markdown / console) is doctor/render/lab_report.py. Light: the
training runs in job workers.
"""
