"""One module per ``edgenas`` sub-command, each with ``add_parser(subparsers)`` and ``run(args)``.

``COMMANDS`` lists the modules in the order ``edgenas --help`` shows them.
"""

COMMANDS: list[str] = ["quickstart", "train", "eval", "generate", "registry", "search", "profile", "devices", "predict",
                       "finetune", "report", "adapt", "split", "cascade", "speculate"]
