"""Icons (SVG) and the application stylesheet, shipped as package data so installed copies find them too."""
