"""Training, evaluation and export of the models that rtser ships."""
