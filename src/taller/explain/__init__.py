"""What a student reads and looks at: the parameter breakdown, probability tables and plots."""

from .parameters import component_of, parameter_table
from .plots import epoch_plot, loss_plot
from .tables import probability_table

__all__ = ["component_of", "parameter_table", "epoch_plot", "loss_plot", "probability_table"]
