"""npugen gateware: Amaranth generators for verified inference blocks.

Every block lives in a subpackage with a frozen params object and importable components::

    from npugen.rtl.systolic import SystolicParams, systolic_array
"""
