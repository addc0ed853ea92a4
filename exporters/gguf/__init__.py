"""GGUF (llama.cpp / Ollama) files: the model, its RoPE frequencies and its tokenizer."""
