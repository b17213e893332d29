"""Data path: HTTP/1.1 proxying on asyncio protocols with the llhttp (httptools) C parser."""
