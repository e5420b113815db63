"""The experiment harness: the demo, the transfer protocol, the job runner, plots and the CLI.

Not imported by ``import safeshield``; its plotting and progress-bar dependencies (matplotlib,
tqdm) are the ``[experiments]`` extra.

- ``demo``: the DrunkSpider SQRL-vs-SAC transfer demo behind ``safeshield demo``.
- ``transfer``: the pre-train -> fine-tune protocol on any env pair.
- ``runner``: parallel jobs with one progress bar, seeds' means and CIs, atomic JSON.
- ``plots``: learning-curve and demo figures.
- ``cli``: the ``safeshield`` console script.
"""
