"""The DSen2Tiles Python GPF operator and its SNAP 10+ / SNAP 9 descriptors."""
