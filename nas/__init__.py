"""The flow: data, supernet training, evaluation, search, fine-tuning, registry, reports, CLI.

Each step is a plain function a user can call from Python; the ``edgenas`` commands
parse arguments, call one of these, and print:

=====================  ==========================================  ==================
step                   function                                    command
=====================  ==========================================  ==================
train the supernet     :func:`nas.training.train`                  ``edgenas train``
evaluate sub-networks  :func:`nas.evaluation.evaluate_subnets`     ``edgenas eval``
profile a device       :func:`nas.profiling.profile_device`        ``edgenas profile``
import a device        :func:`nas.devices.import_device`           ``edgenas devices``
search per device      :func:`nas.search.search`                   ``edgenas search``
fine-tune and ship     :func:`nas.ship.ship`                       ``edgenas finetune``
report                 :func:`nas.report.write_report`             ``edgenas report``
adapt on devices       :func:`nas.adapt.simulate`,                 ``edgenas adapt``
                       :func:`nas.adapt.adapt_round`
everything, on a CPU   :func:`nas.quickstart.quickstart`           ``edgenas quickstart``
=====================  ==========================================  ==================

Every path and database of a workspace comes from :class:`nas.workspace.Workspace`.
"""

from nas.errors import USER_ERRORS, EdgenasError
from nas.workspace import Workspace

__all__ = ["USER_ERRORS", "EdgenasError", "Workspace"]
