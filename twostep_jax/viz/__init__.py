"""Figures and tables: the paper's Fig. 3 and Tables IV/V."""
