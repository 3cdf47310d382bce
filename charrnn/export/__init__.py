"""Taking a model elsewhere: a web page that generates in the browser, ONNX, a folder for
the Hugging Face Hub. No torch: every export reads the checkpoint's weights with numpy.

    about.py       what the model is, as every export describes it
    web.py         model.json + weights for charrnn.js, the single page, the --web-dir folder
    charrnn.js     the JavaScript engine (LSTM, GRU, RNN; charrnn's sampling)
    page.html      the page around it
    onnxgraph.py   one step of the model as an ONNX graph (the numpy engine's equations)
    hub.py         the Hugging Face folder: safetensors, config.json, the model card
    command.py     the export command's work: check every output, then write each whole
"""
