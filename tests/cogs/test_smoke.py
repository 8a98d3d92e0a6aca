async def test_imagine_posts_an_image(stack):
    sent = await stack.discord.slash("imagine", {"prompt": "a castle"})
    message = await stack.finished(sent)
    assert message["embeds"][0]["title"] == "Done"
    assert len(stack.images(message)) == 1
