"""Training: the steps of a run (run), the model as training sees it (model), checkpoints and finished runs
(checkpoints), generation metrics at each evaluation (eval_generation), the loss curve (loss_curve) and the launcher
that checks a launch before its processes start (launch)."""
