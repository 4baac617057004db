"""snn2hw: compile trained, quantized spiking neural networks to bit-exact FPGA hardware.

Pipeline: ``importers`` -> ``ir`` -> ``passes`` -> ``golden`` -> ``hw`` -> ``backends`` -> ``verify``.
"""

__version__ = "0.1.0"
