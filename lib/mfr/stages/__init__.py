"""The stages: each a function from a ``StageContext`` to a ``StageOutput`` (its rows, metrics, quarantine and
images), listed once in ``mfr.stages.registry``; the runner writes what a stage returns. What every stage
shares lives in ``mfr.stages.common``; each stage's DataFrame steps sit in its own module beside its entry."""
