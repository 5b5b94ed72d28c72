"""What a student reads and looks at: the parameter breakdown, probability tables and plots."""

from taller.inspect.parameters import by_component, component_of, parameter_rows, parameter_table
from taller.inspect.plots import epoch_plot, loss_plot
from taller.inspect.tables import probability_table

__all__ = [
    "by_component",
    "component_of",
    "parameter_rows",
    "parameter_table",
    "epoch_plot",
    "loss_plot",
    "probability_table",
]
