// the web app
